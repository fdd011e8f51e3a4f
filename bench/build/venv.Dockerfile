# Shape 3: a venv, a non-root user, the app owned by that user.
ARG BASE
FROM ${BASE}
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY wheels/ /tmp/wheels/
COPY requirements.txt /tmp/
RUN pip install --no-index --find-links /tmp/wheels -r /tmp/requirements.txt
RUN useradd --create-home --uid 1000 app
WORKDIR /srv/app
COPY --chown=app:app app.py .
USER app
EXPOSE 8000
CMD ["python", "app.py"]
