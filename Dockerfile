# syntax=docker/dockerfile:1
# Porthole in a container: `docker build -t porthole .` then
#   docker run -d --name porthole -p 22:2222 -p 80:8080 -p 443:8443 -p 4443:4443 \
#     -e PORTHOLE_DOMAIN=tunnel.example.com -v porthole:/data porthole
# It starts closed: SSH keys are those in /data/authorized_keys (empty at first, re-read when it changes) plus the
# accounts made with `docker exec porthole porthole ...`; nobody can bind until one is added (docs/deploy.md).
# A throwaway open gateway: `docker run ... porthole serve --allow-anonymous` (any key may bind; not on the internet).

# Build stage: the TypeScript compiler and the dev dependencies stay here.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would compile before the sources are copied; ssh2's optional native crypto binding
# needs a C toolchain the slim image lacks, and ssh2 falls back to node's own crypto without it.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Runtime stage: production dependencies, the compiled gateway, its entry point and the inspector's page.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY inspector-ui ./inspector-ui
RUN ln -s /app/bin/porthole.js /usr/local/bin/porthole \
 && mkdir -p /data && touch /data/authorized_keys && chown -R node:node /data

# State (host keys, identities, certificates, the local CA) lives in the volume; the listeners are the container's
# own ports above 1024 (map 22/80/443 to them with -p), the admin API stays inside (docker exec porthole porthole ...).
ENV PORTHOLE_DATA_DIR=/data \
    PORTHOLE_AUTHORIZED_KEYS=/data/authorized_keys \
    PORTHOLE_SSH_ADDR=0.0.0.0:2222 \
    PORTHOLE_HTTP_ADDR=0.0.0.0:8080 \
    PORTHOLE_HTTPS_ADDR=0.0.0.0:8443 \
    PORTHOLE_AGENT_ADDR=0.0.0.0:4443 \
    PORTHOLE_API_ADDR=127.0.0.1:4040
VOLUME /data
EXPOSE 2222 8080 8443 4443

USER node
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:4040/healthz').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]
# The gateway shuts down cleanly on SIGTERM (docker stop) as on SIGINT.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--max-semi-space-size=32", "/app/bin/porthole.js"]
CMD ["serve"]
