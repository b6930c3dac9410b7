"""FEDn's client classes under fedclient: ``client``, ``connect``, ``package``, ``state``, ``inprocess``."""
