FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY postgate ./postgate
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["postgate"]
