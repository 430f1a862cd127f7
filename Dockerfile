# Production image: configure with DATABASE_URL, STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET,
# JWT_SECRET and BILLING_ENV=production (see README). No embedded services are used there.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BILLING_HOME=/var/lib/billing \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /srv/billing
COPY pyproject.toml README.md ./
COPY app ./app
COPY schema ./schema
COPY resolvers ./resolvers
COPY db ./db
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/billing --create-home billing

USER billing
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"8000\")}/health', timeout=2)"
CMD ["billing", "serve"]
