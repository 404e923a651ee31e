# taskcast image: every program, built from Debian 12's packages.
#   docker build -t taskcast .
FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config \
      libzmq3-dev libwebsockets-dev libcap-dev libmsgpack-dev libsodium-dev libev-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY common common
COPY broker broker
COPY gateway gateway
COPY worker worker
COPY pool pool
COPY examples examples
COPY tests tests
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DTASKCAST_WERROR=ON \
 && cmake --build /build -j"$(nproc)" \
      --target taskcast-broker taskcast-gateway taskcast-cli taskcast-demo-worker \
        taskcast-worker

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libzmq5 libwebsockets17 \
      libwebsockets-evlib-ev libev4 libmsgpackc2 libsodium23 curl python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin taskcast \
 && mkdir -p /var/lib/taskcast && chown taskcast /var/lib/taskcast
COPY --from=build /build/bin/ /usr/local/bin/
# The example job children the demo pool runs (compose.yaml's "pool").
COPY --from=build /src/examples/jobs /usr/local/share/taskcast/examples/jobs
USER taskcast
# Containers bind on every interface; the service names are the connect addresses.
ENV TASKCAST_INGEST=tcp://0.0.0.0:5555 \
    TASKCAST_FANOUT=tcp://0.0.0.0:5556 \
    TASKCAST_SYNC=tcp://0.0.0.0:5557 \
    TASKCAST_JOBS=tcp://0.0.0.0:5558 \
    TASKCAST_LISTEN=0.0.0.0:8000
CMD ["taskcast-broker"]
