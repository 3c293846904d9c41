"""The app's models. Import them from here (`from ensemble.models import X`): this package's interface."""
from .history import *  # noqa: F401,F403
from .history import ANSWERED, MAX_FEEDBACK_COMMENT, cost_field  # noqa: F401
