# syntax=docker/dockerfile:1
# tokenwarden: the ext_proc sidecar image.
#
#   docker build -t tokenwarden:0.1.0 .
#   docker run --rm tokenwarden:0.1.0 --help
#
# The default command is `serve` with the built-in defaults, which listen on loopback only (gRPC
# 127.0.0.1:50051, admin 127.0.0.1:9090): right for a sidecar next to Envoy in the same pod. To be
# reachable from elsewhere, give a configuration (see envoy-configs/kubernetes/):
#   docker run -v $PWD/tokenwarden.yaml:/etc/tokenwarden/tokenwarden.yaml -p 50051:50051 -p 9090:9090 \
#     tokenwarden:0.1.0 serve --config /etc/tokenwarden/tokenwarden.yaml
# The process runs as an unprivileged user and writes nothing to disk, so the root filesystem can
# be read-only.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Dependencies first, so that a source change does not reinstall them. No install script is needed:
# every runtime dependency is plain JavaScript or WebAssembly (protobufjs' script only prints a
# version-scheme warning), and the build below is run explicitly.
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY proto ./proto
# Compile to dist/, then drop the development dependencies (TypeScript, vitest, ...).
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# What the server reads at run time: package.json (its version), the compiled code, the
# dependencies and the ext_proc protos (loaded from ../../proto relative to dist/extproc/).
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/proto ./proto
# The image's "node" user, by number: Kubernetes can only check runAsNonRoot against a numeric user.
USER 1000:1000
# gRPC (ext_proc) and the admin HTTP server (health, metrics, API): the default ports.
EXPOSE 50051 9090
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
