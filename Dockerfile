# eventgate in a container: a static binary (pure-Go SQLite, no cgo) on a minimal base.
#   docker build -t eventgate .
#   docker run -p 8080:8080 -v eventgate-data:/data eventgate
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /eventgate .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /eventgate /eventgate
ENV EVENTGATE_ADDR=0.0.0.0:8080 EVENTGATE_DATA_DIR=/data EVENTGATE_LOG_FORMAT=json
VOLUME /data
EXPOSE 8080
USER nonroot
ENTRYPOINT ["/eventgate", "serve"]
