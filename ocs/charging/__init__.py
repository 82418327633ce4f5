"""The charging service: joins Diameter credit control, rating and the ledger.

``directory`` resolves who is charged (tenant and subscriber, at ingestion) and with which
catalog; ``units`` and ``usage`` turn what a request reports into priced ledger legs;
``credit_control`` answers session CCRs (I/U/T) with one ledger script call each; ``events``
answers CCR-EVENT (direct debit, refund, balance check, price enquiry); ``sessions`` remembers
which peer owns a live session so RAR/ASR can reach it; ``supervision`` releases reservations
of sessions that went silent (Tcc).
"""
