"""Pure pricing models, no I/O: the rounding rules every charge follows (``money``) and the
equipment cost and payback estimator (``estimator``, ``estimate_report``). A library so that
billing (invoices, ``balans estimate``) and the api (``POST /estimator``) share one model
without one service importing the other."""
