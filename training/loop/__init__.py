"""The loop on live traffic: retraining from the audit log, judged so that it cannot make the
champion worse (`retrain`)."""
