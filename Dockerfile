# The Leerbot app image: bot, sender worker and dashboard all run `leerbot ...` from it.
FROM python:3.11-slim AS app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY leerbot ./leerbot
COPY bot ./bot
COPY flows ./flows
COPY nlu ./nlu
COPY content ./content
COPY dashboard ./dashboard
COPY store ./store
COPY sandbox ./sandbox
RUN pip install . && useradd --system --uid 10001 leerbot
USER leerbot
ENV LEERBOT_ENV=production
ENTRYPOINT ["leerbot"]
CMD ["bot"]
