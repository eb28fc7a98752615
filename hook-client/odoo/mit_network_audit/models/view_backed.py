"""Models over egress-collector's read views. Odoo's database role may
SELECT from them and nothing more (DESIGN §5), so these models only read; and
they refuse create, write and unlink themselves too (sudo included), so the
refusal is a clear message rather than a database error.

Before `egress-collector setup` has run on this database the views do not
exist: the models then read an empty stand-in of the same shape, so Odoo and
the addon work, and the Trust Report says what is missing.
"""

from odoo import _, api, models
from odoo.exceptions import UserError

#: (database, view) pairs seen present: views are never dropped again.
_ready = set()


def source_ready(cr, view):
    """Whether ``public.<view>`` exists and this role may read it."""
    key = (cr.dbname, view)
    if key in _ready:
        return True
    cr.execute("SELECT to_regclass(%s) IS NOT NULL AND has_table_privilege(%s, 'SELECT')",
               [f"public.{view}", f"public.{view}"])
    if cr.fetchone()[0]:
        _ready.add(key)
        return True
    return False


def column(name, sql_type, expr=None):
    """A model column: ``expr`` over the view (``src``), by default the
    view's column of the same name; ``sql_type`` for the empty stand-in."""
    return (expr or f"src.{name}", sql_type, name)


class ViewBacked(models.AbstractModel):
    _name = "network.audit.view_backed"
    _description = "A read-only model over one of egress-collector's views"
    _auto = False
    _log_access = False
    # Each model also sets `_auto = False` and `_log_access = False` (a
    # Model's own defaults come first in Python's method order) and a
    # `_table` of its own that never exists: Odoo drops a model's `_table`
    # on uninstall, and the collector's views are not Odoo's to drop.

    #: ``public.<_source_view>``, created by `egress-collector setup`.
    _source_view = None
    #: ``(sql expression over the view's columns, sql type, column name)``.
    _source_columns = ()
    #: What a user is told when asked to change a row.
    _refusal = "%(model)s is read-only"

    @property
    def _table_query(self):
        if source_ready(self.env.cr, self._source_view):
            columns = ", ".join(f"{expr} AS {name}" for expr, _type, name in self._source_columns)
            return f"SELECT {columns} FROM public.{self._source_view} src"
        stand_in = ", ".join(f"NULL::{sql_type} AS {name}"
                             for _expr, sql_type, name in self._source_columns)
        return f"SELECT {stand_in} WHERE false"

    @api.model
    def _source_ready(self):
        return source_ready(self.env.cr, self._source_view)

    def _refuse(self, operation):
        raise UserError(_(self._refusal, model=self._description, operation=operation))

    @api.model_create_multi
    def create(self, vals_list):
        self._refuse("create")

    def write(self, vals):
        self._refuse("write")

    def unlink(self):
        self._refuse("unlink")
