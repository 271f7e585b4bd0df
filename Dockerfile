# Multi-stage: a static binary on a minimal, non-root base.
FROM golang:1.26 AS build
# The official images set GOTOOLCHAIN=local; go.mod's toolchain line (the
# standard library's security fixes) is honoured only with auto.
ENV GOTOOLCHAIN=auto
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/latchkey/latchkey/internal/cli.version=${VERSION}" \
    -o /out/latchkey ./cmd/latchkey
# The reference clients, for docker-compose.yml.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/ ./clients/resource-server/example ./clients/bff/cmd/bff ./clients/service

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/latchkey"]
CMD ["serve"]
