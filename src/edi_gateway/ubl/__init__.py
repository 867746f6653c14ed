"""UBL 2.1 knowledge without I/O: hardened parsing (:mod:`.parse`), the verified XSD set
(:mod:`.schemas`), validation (:mod:`.validate`), reading (:mod:`.read`) and writing.

Nothing is imported here: reading a stored document (a bundle flush, a renderer) needs neither
the XSD set nor the validator, whose modules and first schema compile cost start-up; import
each module by its own name.
"""
