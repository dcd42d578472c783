# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml ./
RUN pip install --no-cache-dir .
COPY . .
# Static files are built into the image; settings need placeholder values to load.
RUN SCRM_ENV=production DJANGO_SECRET_KEY=build-only ALLOWED_HOSTS=build \
    DATABASE_URL=postgresql://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput

RUN useradd --create-home scrm
USER scrm
EXPOSE 8000
CMD ["gunicorn", "scrm.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
