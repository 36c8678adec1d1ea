# kmon image: kmon-agent (with its kubelet client, kmon-kubelet-get), kmon-forward,
# kmon-aggregate and kmon-top in /usr/local/bin
# (kmon-top: `kubectl exec -it <pod> -c forward -- kmon-top --socket ...`).
#   docker build -t kmon:0.1.0 .
# Plain syntax, no "# syntax=" frontend image to pull: builds work offline too.
# The chart starts the agent as root with a short capability list (it becomes
# kmon, 65532, with none once attached) and the consumers as nobody (65534);
# the image itself defaults to nobody.

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake make pkg-config gcc clang llvm libbpf-dev bpftool libelf-dev \
      zlib1g-dev libuv1-dev libcurl4-openssl-dev libcjson-dev libmicrohttpd-dev \
      libncurses-dev libsodium-dev \
      libdeflate-dev libisal-dev libzstd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Build machines may lack BTF (/sys/kernel/btf/vmlinux): use the pinned header.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DKMON_TESTS=OFF \
      -DKMON_VMLINUX_H=/src/bpf/vmlinux/x86_64/vmlinux.h \
 && cmake --build build -j"$(nproc)" \
 && install -D -m 0755 -t /out/usr/local/bin \
      build/agent/kmon-agent build/agent/kmon-kubelet-get \
      build/consumers/kmon-forward build/consumers/kmon-aggregate \
      build/consumers/kmon-top

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libbpf1 libelf1 zlib1g libuv1 libcurl4 libcjson1 libmicrohttpd12 libncursesw6 libsodium23 \
      ca-certificates \
      libdeflate0 libisal2 libzstd1 \
 && rm -rf /var/lib/apt/lists/* \
 # The control socket's group (the chart's socket.gid) and the agent's user
 # after attach (--run-as 65532:65532), so ps and ls show names.
 && groupadd --system --gid 65532 kmon \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kmon
COPY --from=build /out/ /
LABEL org.opencontainers.image.title="kmon" \
      org.opencontainers.image.description="Kubernetes node agent: container memory and exec events via eBPF"
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/kmon-agent"]
