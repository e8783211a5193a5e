# Production image for Retainers: gunicorn serving retainers.wsgi on port 8000.
# The same image runs the celery worker and beat (see docker-compose.yml).
FROM python:3.12-slim-bookworm

# PYTHONPATH: import the project from /app (not the copy pip puts in
# site-packages), so BASE_DIR, templates and static files resolve to /app in
# every process (gunicorn, celery, manage.py).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

# WeasyPrint (invoice PDFs) needs Pango, HarfBuzz's subsetter and a font.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when
# pyproject.toml or constraints.txt change, not on every code change.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt

COPY . .
RUN pip install -c constraints.txt .

# Static files are collected at build time with DEBUG=0, so the hashed-name
# manifest the production storage needs is in the image. The key and the email
# URL are dummies: collectstatic needs settings to load (they refuse to without
# both when DEBUG is off), not a real secret or mail server.
# tests/test_build.py replays these steps.
RUN DEBUG=0 SECRET_KEY=build-only-dummy-key EMAIL_URL=console:// python manage.py collectstatic --noinput

RUN useradd --system --create-home --uid 1000 app \
    && mkdir -p /app/var/media \
    && chown -R app:app /app/var
USER app

EXPOSE 8000
# Workers: gunicorn reads WEB_CONCURRENCY (default here: 3).
ENV WEB_CONCURRENCY=3
CMD ["gunicorn", "retainers.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
