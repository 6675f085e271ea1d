CREATE TABLE IF NOT EXISTS `geo` (
  `id` int NOT NULL,
  `code` varchar(10) NOT NULL,
  `pt` point NOT NULL /*!80003 SRID 4326 */,
  `p` int DEFAULT NULL,
  UNIQUE KEY `u_code` (`code`(5) DESC),
  SPATIAL KEY `sp` (`pt`),
  INDEX `i_p` (`p`),
  CONSTRAINT `chk` CHECK (`p` > 0),
  PERIOD FOR `app` (`s`,`e`)
) ENGINE = InnoDB
/*!50100 PARTITION BY HASH (`id`) PARTITIONS 4 */
