from . import test_install
from . import test_readonly
from . import test_settings
from . import test_trust_report
from . import test_outbound
from . import test_without_collector
from . import test_forensic
from . import test_capture_settings
