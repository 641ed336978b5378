# syntax=docker/dockerfile:1
# Moim's image: one static binary on distroless, run as a non-root user.
#   docker build -t moim:latest .
#   docker run -p 8080:8080 moim:latest        # embedded backends, data in /data
# docker-compose.yml and docker-swarm.yml run it against Redis, MongoDB and MySQL.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO off: the embedded SQLite is modernc's pure-Go one, so the binary
# needs no libc and runs on distroless/static.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/moim ./server \
    && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/moim /moim
# Only embedded mode writes here (and the generated JWT secret).
COPY --from=build --chown=65532:65532 /out/data /data
ENV MOIM_ADDR=:8080 \
    MOIM_DATA_DIR=/data
USER 65532:65532
EXPOSE 8080
VOLUME ["/data"]
# No shell or curl on distroless: the binary probes its own /healthz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/moim", "-healthcheck"]
ENTRYPOINT ["/moim"]
