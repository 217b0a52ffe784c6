"""Local web page: drop photos and videos, watch progress, compare before and after, download.

``streamguard serve`` runs :mod:`streamguard.web.server` (FastAPI on uvicorn);
:mod:`streamguard.web.jobs` holds the uploads, the bounded background workers
that drive :mod:`streamguard.api`, and the clean-up of every file they make.
"""
