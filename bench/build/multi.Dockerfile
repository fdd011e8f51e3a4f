# Shape 2: multi-stage; `pip install --user` in a builder stage, only ~/.local goes to the image.
ARG BASE
FROM ${BASE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY wheels/ /tmp/wheels/
COPY requirements.txt /tmp/
RUN pip install --user --break-system-packages --no-index --find-links /tmp/wheels \
    -r /tmp/requirements.txt

FROM ${BASE}
ENV PYTHONUNBUFFERED=1
COPY --from=builder /root/.local /root/.local
ENV PATH=/root/.local/bin:$PATH
WORKDIR /srv/app
COPY app.py .
EXPOSE 8000
CMD ["python3", "app.py"]
