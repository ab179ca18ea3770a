"""notify: tells people and other systems what happens, by signed webhooks and e-mail, and turns mail into tickets."""
