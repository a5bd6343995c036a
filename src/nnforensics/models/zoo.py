"""Imports every module that registers built-in architectures."""

# One import per line, so that new families merge without conflicts.
from . import lenet  # noqa: F401
from . import mobilenet  # noqa: F401
from . import preact_resnet  # noqa: F401
from . import resnet  # noqa: F401
from . import shufflenet  # noqa: F401
from . import squeezenet  # noqa: F401
from . import vgg  # noqa: F401
from . import vit  # noqa: F401
from . import wide_resnet  # noqa: F401
