"""People who sign in to tend: roles and books (:mod:`.caller`), passwords (:mod:`.passwords`),
the people and their API tokens (:mod:`.directory`) and the audit log (:mod:`.audit`)."""
