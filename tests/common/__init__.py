"""One test battery per family (scikit-learn's check_estimator): a new member gets them free."""
