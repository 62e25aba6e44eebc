DROP TABLE notice_deliveries;
DROP TABLE notices;
DROP TABLE notified_levels;
DROP TABLE notification_channels;
