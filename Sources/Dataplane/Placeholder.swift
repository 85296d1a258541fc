public enum DataplaneModule {}
