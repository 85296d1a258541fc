print("vpnfast")
