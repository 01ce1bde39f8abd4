"""django-import-export resources of the customers app, one module per area."""
