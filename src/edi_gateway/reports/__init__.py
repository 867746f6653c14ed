"""Reports over the store: KPIs per partner (``edi-gateway report kpi``, the console)."""
