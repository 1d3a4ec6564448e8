# The Leerbot app image: migrate, bot, sender and dashboard all run `leerbot ...` from it.
# Build: docker compose build (or docker build -t leerbot .). Rasa runs from its own official
# image (Python 3.10); this one only talks to it over HTTP.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY leerbot ./leerbot
COPY bot ./bot
COPY flows ./flows
COPY nlu ./nlu
COPY content ./content
COPY dashboard ./dashboard
COPY store ./store
COPY sandbox ./sandbox
RUN python -m venv /opt/leerbot && /opt/leerbot/bin/pip install .

FROM python:3.11-slim AS app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/leerbot/bin:$PATH \
    LEERBOT_ENV=production
# Fonts for the loopbaankaart (the summary card is drawn with Pillow).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin leerbot
COPY --from=build /opt/leerbot /opt/leerbot
USER 10001
WORKDIR /tmp
# Refuses to start without a real LEERBOT_SECRET_KEY (LEERBOT_ENV=production).
ENTRYPOINT ["leerbot"]
CMD ["bot", "--webhook"]
