"""rbqm: risk-based quality management analytics for clinical trials.

Data flows one way: study folder -> validated tables -> KRI/QTL/CSM results ->
signals and actions -> dashboard pages and reports.
"""

from rbqm.errors import DefinitionError, RbqmError, SchemaError, StudyFormatError

__all__ = ["RbqmError", "SchemaError", "DefinitionError", "StudyFormatError", "__version__"]
__version__ = "0.1.0"
