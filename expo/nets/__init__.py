"""Neural-network building blocks shared by EXPO and every baseline."""
