# One image for every Lilio process in docker-compose.yaml: `lilio server`, `lilio mount`, `lilio node`.
FROM node:20-bookworm-slim AS build
WORKDIR /lilio
# python3, make, g++: better-sqlite3 and the patched fuse-native binding compile from source.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ libfuse2 fuse \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY scripts/patch-fuse-native scripts/
# binding.gyp + native/: the fd-passing addon of src/fuse, built by npm ci's install script.
COPY binding.gyp ./
COPY native native
RUN npm ci --no-audit --no-fund && scripts/patch-fuse-native
COPY tsconfig.json tsconfig.build.json ./
COPY src src
COPY scripts/build-info.mjs scripts/
# No .git in the image: `lilio --version` shows the commit given here (docker build --build-arg LILIO_COMMIT=$(git rev-parse HEAD)).
ARG LILIO_COMMIT=
RUN LILIO_COMMIT="$LILIO_COMMIT" npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# libfuse2 + fuse: the mount container loads libfuse.so.2 and mounts through fusermount.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libfuse2 fuse \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /lilio
COPY --from=build /lilio/node_modules node_modules
COPY --from=build /lilio/dist dist
COPY --from=build /lilio/build/Release/fuse_fd.node build/Release/fuse_fd.node
COPY package.json ./
COPY bin bin
ENV LILIO_HOME=/var/lib/lilio
VOLUME /var/lib/lilio
ENTRYPOINT ["/lilio/bin/lilio"]
CMD ["--help"]
