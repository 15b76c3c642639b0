# Multi-stage build of the flightsink binary into a small image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
# the Go client's module, which go.mod's replace directive points at
COPY clients/go/fsclient/go.mod clients/go/fsclient/go.sum ./clients/go/fsclient/
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -buildvcs=false -trimpath -ldflags="-s -w" -o /out/flightsink ./cmd/flightsink

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flightsink /usr/local/bin/flightsink
# Listeners on every interface (deploy/docker/config.yaml); the rest at the defaults config.yaml documents.
COPY deploy/docker/config.yaml /etc/flightsink/config.yaml
EXPOSE 8815 9464
ENTRYPOINT ["/usr/local/bin/flightsink"]
CMD ["serve", "--config", "/etc/flightsink/config.yaml"]
