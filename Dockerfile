# game-server in a container: built in a Rust stage, run from a slim Debian image as an
# unprivileged user. Configuration is the GAME_SERVER_* environment (docs/operations.md).
#   docker build -t game-server .
#   docker run --rm -p 7777:7777 -p 7780:7780 -p 127.0.0.1:9100:9100 --ulimit nofile=65536 game-server

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p game-server

FROM debian:bookworm-slim
RUN useradd --system --no-create-home --uid 10001 game
COPY --from=build /src/target/release/game-server /usr/local/bin/game-server
USER game
ENV GAME_SERVER_ADDR=0.0.0.0:7777 \
    GAME_SERVER_WS_ADDR=0.0.0.0:7780 \
    GAME_SERVER_METRICS_ADDR=0.0.0.0:9100 \
    RUST_LOG=info
EXPOSE 7777 7780 9100
ENTRYPOINT ["/usr/local/bin/game-server"]
