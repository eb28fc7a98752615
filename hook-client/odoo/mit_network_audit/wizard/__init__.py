from . import export_wizard
