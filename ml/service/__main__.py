"""`python -m ml.service`: run the ML service with uvicorn on ML_HOST:ML_PORT (default 127.0.0.1:8002)."""

from __future__ import annotations

import uvicorn

from ml.service.config import settings


def main() -> None:
    uvicorn.run("ml.service.main:app", host=settings.HOST, port=settings.PORT)


if __name__ == "__main__":
    main()
