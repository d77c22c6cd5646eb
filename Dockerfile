# One image for every Python service of the stack (api, worker, beat, ml, flower); compose picks the process
# (`python -m scripts.processes NAME`: the same command lines as `make run`).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY backend backend
COPY common common
COPY ml ml
COPY scripts scripts
COPY .env .env
# results/: the uploads and archives (a volume); var/: beat's schedule.
RUN useradd --create-home app && mkdir -p /app/results /app/var && chown app /app/results /app/var
USER app
