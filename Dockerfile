# The Lookalike app image: the web app under gunicorn, and the `lookalike` command for admins.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
EXPOSE 8000
# One process with threads: ONNX Runtime uses every core inside one process, the model and the vector cache
# are loaded once, and the reviewer page finds the search it explains (kept in that process's memory).
# Never expose it directly: a thread serves one request from its first byte to its last, so slow clients can
# hold them all. Put nginx in front (docker-compose.yml, deploy/nginx.conf.template).
CMD ["gunicorn", "--workers", "1", "--threads", "8", "--bind", "0.0.0.0:8000", "--timeout", "60", "webapp:create_app()"]
