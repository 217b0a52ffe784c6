"""Local web page: drop photos and videos, watch progress, compare before and after, download.

``streamguard serve`` runs :mod:`streamguard.web.server`: its command line, and uvicorn
serving :mod:`~streamguard.web.app` (the FastAPI routes) behind :mod:`~streamguard.web.guard`
(Host names, CSRF header, security headers). :mod:`~streamguard.web.uploads` streams a
file to disk, :mod:`~streamguard.web.events` streams the jobs' state to open pages.

No HTTP below that: :mod:`~streamguard.web.manager` holds the jobs
(:mod:`~streamguard.web.jobs`), runs them on bounded workers that drive
:mod:`streamguard.api` and deletes every file they make, within the
:mod:`~streamguard.web.limits`, in the working folder of :mod:`~streamguard.web.workdir`;
:mod:`~streamguard.web.zipstream` streams several results as one zip.
"""
