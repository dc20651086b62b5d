# The MLflow tracking server of the prod profile, pinned to requirements.lock's versions.
FROM python:3.11-slim
RUN pip install --no-cache-dir "mlflow[auth]==3.17.2" "psycopg[binary]==3.3.9"
EXPOSE 5000
