"""Offline xDR import: the host MNO's CDR files, rated and charged like online usage.

Pure parts only (no Redis, no sockets): the per-MNO mapping and its validation
(``mapping``), number normalisation (``numbers``), line parsers (``parse``), record
normalisation (``records``) and record → priced ledger legs (``rate``). The importer
(``importer``) drives them against a ``balance.ledger.Ledger``; ``ocs xdr`` is the CLI.
"""
