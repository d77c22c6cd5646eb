# One image for every Python service of the stack (api, worker, beat, ml, flower); compose picks the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY backend backend
COPY ml ml
COPY scripts scripts
COPY .env .env
RUN useradd --create-home app && mkdir -p /app/results && chown app /app/results
USER app
