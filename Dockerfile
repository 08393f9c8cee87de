# syntax=docker/dockerfile:1
#
# One image for every process of the backend; the command picks which one runs:
#   API (default)  node dist/server.js
#   worker         node dist/worker.js      (PostgreSQL only)
#   migrations     node dist/db/migrate-cli.js
# The build stage compiles src/ to dist/ (scripts/build.mjs, as `npm install` does on a checkout).
# Every setting is an environment variable: see src/core/config.ts.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS base
WORKDIR /app

# ---- deps: production node_modules only, exactly as package-lock.json pins them ----
FROM base AS deps
COPY package.json package-lock.json ./
# --ignore-scripts: the install scripts in the tree are esbuild's optional binary check and
# sharp's (which builds libvips from source only when no prebuilt one fits); package.json's
# allowScripts denies both (esbuild finds its platform package, sharp loads its prebuilt
# @img/sharp-linux-*), and --ignore-scripts also skips our own `prepare`: the build stage builds.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- web: the operator panel and the Mini App, built with the development dependencies ----
FROM base AS web
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --ignore-scripts --no-audit --no-fund
COPY web ./web
COPY src/api-client/schema.ts ./src/api-client/schema.ts
RUN node --import tsx web/build.ts

# ---- build: dist/ from src/ (esbuild is a production dependency) ----
FROM deps AS build
COPY scripts ./scripts
COPY tsconfig.json ./
COPY src ./src
RUN node scripts/build.mjs server pglite-template

# ---- runtime ----
FROM base AS runtime
# The offline provider writes the prompt on its images (SVG text through sharp's librsvg), which
# needs a font: the slim image has none.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    DATA_DIR=/data \
    PORT=8000

# Code and dependencies stay owned by root, so the app cannot modify them; it writes only to
# DATA_DIR (embedded database, stored files).
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY drizzle ./drizzle
COPY --from=build /app/dist ./dist
COPY --from=web /app/dist/web ./dist/web

# The chown must come before VOLUME: a new named volume copies this ownership from the image.
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]

USER node
EXPOSE 8000

# server.ts and worker.ts handle SIGTERM themselves (stop accepting, finish in-flight requests
# within SHUTDOWN_TIMEOUT_SECONDS, close the database, exit 0). node is PID 1 here, started
# directly rather than through npm/npx, so the signal reaches it. Give the container a stop
# timeout longer than SHUTDOWN_TIMEOUT_SECONDS (default 10 s; Docker's default is also 10 s).
STOPSIGNAL SIGTERM

# Slim images have no curl: node's fetch does the probe. /api/v1/health answers 503 when the
# database is down, which marks the container unhealthy. This probe is for the API only; the
# worker and the migration command do not listen on HTTP, so disable it for them
# (compose: `healthcheck: { disable: true }`, docker run: `--no-healthcheck`).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/api/v1/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

CMD ["node", "dist/server.js"]
