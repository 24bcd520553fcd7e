# The Airflow image every Airflow service of the stack runs (api-server, schedulers, dag-processor,
# triggerer, workers, Flower, init). Built by `docker compose build` / `make up` from the pinned
# official image plus requirements.lock, our own lock file (no constraints file can be fetched
# offline, and free resolution picks a celery that breaks the celery provider).
# Change the Python dependencies in requirements.in, then `make lock`. The base image is a build arg
# so the offline kit's stand-in (offline/) can replace the official image.
ARG AIRFLOW_BASE_IMAGE=apache/airflow:3.3.2-python3.13
FROM ${AIRFLOW_BASE_IMAGE}

# extra-ca-bundle.pem is optional (the glob may match nothing): a proxy's or company's public CA
# certificate that pip must trust to reach the package index. No secret enters the image.
COPY --chown=airflow:0 requirements.lock extra-ca-bundle*.pem /tmp/build/
RUN set -eu; \
    ca=/etc/ssl/certs/ca-certificates.crt; \
    if [ -s /tmp/build/extra-ca-bundle.pem ]; then \
      cat "$ca" /tmp/build/extra-ca-bundle.pem > /tmp/build/ca.pem; ca=/tmp/build/ca.pem; \
    fi; \
    PIP_CERT="$ca" pip install --no-cache-dir --disable-pip-version-check -r /tmp/build/requirements.lock; \
    rm -rf /tmp/build; \
    mkdir -p /opt/airflow/logs
