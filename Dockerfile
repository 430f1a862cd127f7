# Production image. Configure with DATABASE_URL, STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET and a way
# for admins to sign in, API_KEYS=on and/or OIDC_ISSUER… (see README, "Configuration", and
# docs/security.md, "Signing in"); BILLING_ENV is production, so nothing embedded runs
# and development defaults are refused at start. The same image runs the API (default command)
# and the billing worker (`billing worker`); see deploy/compose.yaml and docs/operations.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BILLING_ENV=production \
    BILLING_HOME=/var/lib/billing \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /srv/billing

# Dependencies first, from pyproject.toml alone, so a code change reuses this layer. Only the
# runtime dependencies: not the `embedded` extra (embedded PostgreSQL, Stripe emulator) nor `dev`.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY app ./app
COPY schema ./schema
COPY resolvers ./resolvers
COPY db ./db
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /var/lib/billing --create-home billing

USER billing
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"8000\")}/ready', timeout=2)"
# Applies pending migrations first (under an advisory lock: replicas may start together);
# SIGTERM (docker stop) drains requests and stops cleanly.
CMD ["billing", "serve"]
