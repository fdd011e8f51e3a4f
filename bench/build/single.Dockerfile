# Shape 1: one stage, system Python, pip into the system site-packages.
ARG BASE
FROM ${BASE}
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The apt step of such a Dockerfile: python3/pip come with the base (the benchmark stays offline),
# so it only does the usual configuration and clean-up.
RUN set -eux; \
    echo 'APT::Install-Recommends "false";' > /etc/apt/apt.conf.d/90norecommends; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    mkdir -p /srv/app
WORKDIR /srv/app
COPY wheels/ /tmp/wheels/
COPY requirements.txt .
RUN pip install --break-system-packages --no-index --find-links /tmp/wheels -r requirements.txt
COPY app.py .
EXPOSE 8000
CMD ["python3", "app.py"]
