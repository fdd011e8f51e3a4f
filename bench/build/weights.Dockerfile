# Shape 4: model weights in the image. A 500 MiB file (random bytes, as weights compress about
# as badly) copied before the app, the layer order AI images use so an app edit keeps it cached.
ARG BASE
FROM ${BASE}
WORKDIR /srv/app
COPY weights.bin /models/weights.bin
COPY app.py .
EXPOSE 8000
CMD ["python3", "app.py"]
