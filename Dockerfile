# The Lookalike app image: the web app under gunicorn, and the `lookalike` command for admins.
# By default it has what serving needs (ONNX Runtime, no TensorFlow); EXTRAS=training adds the training libraries
# (docker-compose.yml's `trainer`).
FROM python:3.11-slim
ARG EXTRAS=serving
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /app
# A regular install (templates, static files and migrations ship inside the packages); /app keeps only var/.
COPY . /tmp/lookalike
RUN pip install --no-cache-dir "/tmp/lookalike[${EXTRAS}]" && rm -rf /tmp/lookalike
EXPOSE 8000
# One process with threads: ONNX Runtime uses every core inside one process, the model and the vector cache
# are loaded once, and the reviewer page finds the search it explains (kept in that process's memory).
# Never expose it directly: a thread serves one request from its first byte to its last, so slow clients can
# hold them all. Put nginx in front (docker-compose.yml, deploy/nginx.conf.template).
CMD ["gunicorn", "--workers", "1", "--threads", "8", "--bind", "0.0.0.0:8000", "--timeout", "60", "webapp:create_app()"]
