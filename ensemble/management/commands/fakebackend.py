"""``manage.py fakebackend``: serve the fake OpenAI-compatible backend in the foreground.

Example::

    python manage.py fakebackend --port 4000 --latency 0.5 --jitter 0.1 \\
        --model 'good:quality=0.9' --model 'flaky:fail_first=2' --model 'down:status=500'

Any other model name is served with the default behaviour, and
``name@spec`` model names work per request (see ensemble.devtools.fakebackend).
"""

from django.core.management.base import BaseCommand, CommandError

from ensemble.devtools.fakebackend import Behaviour, FakeBackend, parse_behaviour, parse_model_option
from ensemble.management.arguments import port_number

# uvicorn.config.LOG_LEVELS, spelled out so that parsing the options need not import uvicorn.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class Command(BaseCommand):
    """Run ensemble.devtools.fakebackend.FakeBackend under uvicorn until interrupted."""

    help = "Serve a fake OpenAI-compatible chat backend (for tests, demos and benchmarks)."

    def add_arguments(self, parser) -> None:
        """Declare the command-line options."""
        parser.add_argument("--host", default="127.0.0.1")
        # Checked here: the socket layer takes 99999 modulo 65536 and would listen on 34463.
        parser.add_argument("--port", type=port_number, default=4000)
        parser.add_argument("--latency", type=float, default=0.0,
                            help="default seconds before each answer")
        parser.add_argument("--jitter", type=float, default=0.0,
                            help="default extra uniform 0..JITTER seconds")
        parser.add_argument("--api-key", default=None,
                            help="require 'Authorization: Bearer KEY'")
        parser.add_argument("--seed", type=int, default=0, help="seed for the jitter")
        parser.add_argument("--default", default="", metavar="SPEC",
                            help="behaviour spec for unlisted models, e.g. 'quality=0.7'")
        parser.add_argument("--model", action="append", default=[], metavar="NAME:SPEC",
                            help="a named model and its behaviour, e.g. 'slow:latency=2,quality=0.8' "
                                 "(repeatable; split at the last colon)")
        parser.add_argument("--log-level", choices=LOG_LEVELS, default="warning",
                            help="uvicorn log level; \"info\" adds an access log line per request")

    def handle(self, *args, **options) -> None:
        """Build the app from the options and serve it; returns when uvicorn stops."""
        import uvicorn  # only needed when actually serving

        try:
            base = Behaviour(latency=options["latency"], jitter=options["jitter"])
            default = parse_behaviour(options["default"], base)
            models = dict(parse_model_option(text, default) for text in options["model"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        app = FakeBackend(models=models, default=default,
                          api_key=options["api_key"], seed=options["seed"])
        self.stdout.write(f"Fake backend on http://{options['host']}:{options['port']}/v1 "
                          f"(models: {', '.join(models) or 'any'}; default: {default})")
        # One process by design: without workers=1, uvicorn takes WEB_CONCURRENCY from the
        # environment (set for Trio's gunicorn) and refuses to start an app object with more.
        uvicorn.run(app, host=options["host"], port=options["port"], lifespan="off",
                    log_level=options["log_level"], workers=1)
