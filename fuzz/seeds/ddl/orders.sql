CREATE TABLE `orders` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `customer_id` int(11) NOT NULL,
  `amount` decimal(10,2) NOT NULL,
  `note` text DEFAULT NULL COMMENT 'a, (b) \' ``',
  PRIMARY KEY (`id`),
  KEY `idx_amount` (`amount`),
  KEY `idx_customer` (`customer_id`),
  KEY `idx_amount2` (`amount`,`id`),
  FULLTEXT KEY `ft_note` (`note`),
  CONSTRAINT `fk` FOREIGN KEY (`customer_id`) REFERENCES `db`.`customers` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4
