"""`python -m services.classifier`: run the worker with settings from CLASSIFIER_* variables."""

import uvicorn

from services.classifier.app import create_app
from services.classifier.settings import ClassifierSettings
from services.contract import jsonlog


def main() -> None:
    settings = ClassifierSettings()
    jsonlog.configure(settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, **settings.uvicorn_options())


if __name__ == "__main__":
    main()
