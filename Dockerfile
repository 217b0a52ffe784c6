# streamguard's local web page in a container.
#
#   docker build -t streamguard .
#   docker run --rm -p 127.0.0.1:8765:8765 streamguard
#
# then open http://127.0.0.1:8765/ on the host. Publishing on 127.0.0.1 keeps the
# page to this machine: the app has no login, so anyone who can reach the port can
# use it. Options go after the image name, e.g. `docker run ... streamguard --max-upload 4G`.
#
# The server answers only to loopback names (localhost, 127.0.0.1), the container's own
# address and names given with --allowed-host; anything else gets 421 (DNS rebinding).
# To reach it from other machines by the host's name or address, publish the port and
# name them, e.g.
#   docker run --rm -p 8765:8765 streamguard --allowed-host photos.lan --allowed-host 192.168.1.20

# python:3.11-slim, with its Debian release named: the package names below are bookworm's
# (trixie renamed libglib2.0-0 to libglib2.0-0t64).
FROM python:3.11-slim-bookworm

# mediapipe imports OpenCV (opencv-contrib-python, not the headless build), which links
# libGL.so.1 and libgthread/libglib-2.0; PyAV's wheel carries its own FFmpeg.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package is built from (pyproject names README.md as its readme).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streamguard ./streamguard
# The check fails the build, rather than the page at run time, if the page's files
# (streamguard/web/static) were not installed with the package.
RUN pip install . \
    && python -c "from streamguard.web.app import check_assets; check_assets()" \
    && cd / && rm -rf /src

# Not root: the server only needs its temporary folder (a private one under /tmp).
RUN useradd --create-home --uid 10001 streamguard
USER streamguard
WORKDIR /home/streamguard

EXPOSE 8765
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/api/health', timeout=4)"]

# Exec form: streamguard is PID 1 and gets `docker stop`'s SIGTERM itself, cancels the
# running jobs and deletes every upload and result before it exits.
ENTRYPOINT ["streamguard", "serve", "--host", "0.0.0.0"]
