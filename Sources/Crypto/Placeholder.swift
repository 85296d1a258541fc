public enum CryptoModule {}
